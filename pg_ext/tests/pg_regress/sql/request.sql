-- The request JSON of the specification, and the errors of clients whose request cannot be built.
BEGIN;
SET LOCAL infor_comm.timezone = 'Europe/Moscow';
INSERT INTO product_migration_clients VALUES ('354815252', '123456', 'in_wizard', 'OK'),
                                             ('NO_SNAPSHOT', NULL, 'in_wizard', 'OK'),
                                             ('NO_KPP', NULL, 'in_wizard', 'OK');
INSERT INTO clients_back_system_ids VALUES ('123456', 'ibso', '354815252'),
                                           ('123456', 'infor', 'A6UJ9A00EEG'),
                                           ('123456', 'bisquit', 'not sent');
INSERT INTO clientsnapshot VALUES ('354815252', '1200009193', '1231200000844', '120001001', '02847208'),
                                  ('NO_KPP', '1200009193', '1231200000844', ' ', NULL);
SELECT infor_comm.build_request('354815252', 'E1F73276-7FB6-4E80-85DE-FD8A939998F0',
                                '2023-07-27 06:27:04.953+00');
SAVEPOINT s;
SELECT infor_comm.build_request('NO_SNAPSHOT', gen_random_uuid(), now());
ROLLBACK TO s;
SELECT infor_comm.build_request('NO_KPP', gen_random_uuid(), now());
ROLLBACK TO s;
SELECT infor_comm.build_request('NOBODY', gen_random_uuid(), now());
ROLLBACK;
