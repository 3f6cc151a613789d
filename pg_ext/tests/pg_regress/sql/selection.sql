-- Who is a thinking client, and who cannot be sent: one row per rule of docs/contract.md.
-- The job runs at 2026-11-20 12:00 Moscow time; seven full days before is 2026-11-13 12:00.
BEGIN;
INSERT INTO product_migration_clients VALUES
    ('SEVEN_DAYS',        'M1', 'in_wizard', 'OK'),
    ('ONE_SECOND_SHORT',  'M2', 'in_wizard', 'OK'),
    ('IN_PROGRESS',       'M3', 'in_wizard', 'IN_PROGRESS'),
    ('TO_SIGN',           'M4', 'in_wizard', 'TO_SIGN'),
    ('SIGNED',            'M5', 'in_wizard', 'SIGNED'),
    ('MIGRATED',          'M6', 'migrated',  'OK'),
    ('NO_LOG',            'M7', 'in_wizard', 'OK'),
    ('NO_SNAPSHOT',       'M8', 'in_wizard', 'OK'),
    ('TAB_INN',           'M9', 'in_wizard', 'OK'),
    ('NBSP_KPP',          'M10', 'in_wizard', 'OK'),
    ('NULL_CHANGE_DATE',  'M11', 'in_wizard', 'OK'),
    (repeat('L', 201),    'M12', 'in_wizard', 'OK');
INSERT INTO wizard_status_change_log
SELECT organization_id, wizard_status, timestamp '2026-11-13 12:00:00'
  FROM product_migration_clients WHERE organization_id <> 'NO_LOG';
UPDATE wizard_status_change_log SET change_date = change_date + interval '1 second'
 WHERE organization_id = 'ONE_SECOND_SHORT';
INSERT INTO wizard_status_change_log VALUES ('NULL_CHANGE_DATE', 'OK', NULL);
INSERT INTO clientsnapshot
SELECT organization_id, '7700000000', '1027700000000', '770001001', NULL
  FROM product_migration_clients WHERE organization_id <> 'NO_SNAPSHOT';
UPDATE clientsnapshot SET tin = E'\t' WHERE id = 'TAB_INN';
UPDATE clientsnapshot SET kpp = U&'\00A0' WHERE id = 'NBSP_KPP';

SELECT left(organization_id, 20) AS organization_id, status_since, full_days, skip_reason
  FROM infor_comm.thinking_clients_at('2026-11-20 12:00:00+03')
 ORDER BY 1;

-- The daily job sends the ones without a skip_reason, and nobody twice.
SELECT infor_comm.enqueue_thinking_clients('2026-11-20 12:00:00+03') AS enqueued;
SELECT infor_comm.enqueue_thinking_clients('2026-11-20 12:00:00+03') AS enqueued_again;
SELECT organization_id, request_date, status_code, time_create
  FROM infor_comm.infor_communication_task ORDER BY 1;
ROLLBACK;
