-- infor_comm.client_reaction: the reference table of client reactions, from the specification's last table.

-- The client reactions that InforCRM may push, from the last table of the specification.
CREATE TABLE infor_comm.client_reaction (
    reaction_id            integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_status            varchar(200) NOT NULL,
    task_status_name       text NOT NULL,
    first_level            varchar(200),
    second_level           varchar(200),
    second_level_free_text boolean NOT NULL DEFAULT false,
    reaction_type          text NOT NULL,
    description            text,
    CONSTRAINT client_reaction_task_status_check CHECK (task_status IN ('3', '5')),
    CONSTRAINT client_reaction_unique UNIQUE NULLS NOT DISTINCT (task_status, first_level, second_level)
);
COMMENT ON TABLE infor_comm.client_reaction IS
    'The allowed (task status, first level, second level) client reactions and their reaction type, from the specification.';
COMMENT ON COLUMN infor_comm.client_reaction.task_status IS 'taskStatus of the push: 3 processed (Обработано), 5 not processed (Не обработано).';
COMMENT ON COLUMN infor_comm.client_reaction.first_level IS 'firstLevelClientReaction; NULL where the specification says "-" (absent).';
COMMENT ON COLUMN infor_comm.client_reaction.second_level IS 'secondLevelClientReaction; NULL where the specification says "-" (absent).';
COMMENT ON COLUMN infor_comm.client_reaction.second_level_free_text IS 'True when the second level is free text (the client''s migration status).';

INSERT INTO infor_comm.client_reaction
       (task_status, task_status_name, first_level, second_level, second_level_free_text, reaction_type, description)
VALUES
    ('5', 'Не обработано', NULL, NULL, false, 'Технический',
     'Задача находилась в общей корзине. Истек срок отработки задачи. ИЛИ сменился статус миграции клиента при котором дальнейший обзвон не предполагается'),
    ('5', 'Не обработано', 'Не требует отработки', NULL, true, 'Технический',
     'Сменился статус миграции клиента при котором дальнейший обзвон не предполагается (второй уровень: «Укажем статус миграции клиента «....»»)'),
    ('5', 'Не обработано', 'Не обработано', 'Не взята в работу', false, 'Технический',
     'Задача с персональной коммуникацией, но истек срок отработки задачи'),
    ('5', 'Не обработано', 'Завершено по сроку давности', NULL, false, 'Технический',
     'Задача с персональной коммуникацией, был отклик с перезвоном, но сотрудник так и не завершил коммуникацию в отведенный ему срок');

INSERT INTO infor_comm.client_reaction
       (task_status, task_status_name, first_level, second_level, reaction_type, description)
SELECT '3', 'Обработано', r.first_level, r.second_level, 'Ручной отклик', r.description
  FROM (VALUES
    ('Дозвон - планирует миграцию', 'Проконсультирован по миграции', 'Сотрудник отработал задачу и она закрылась'),
    ('Дозвон - планирует миграцию', 'Оформили переход на звонок', 'Сотрудник отработал задачу и она закрылась'),
    ('Дозвон - планирует миграцию', 'Назначена встреча с КМ', 'Сотрудник отработал задачу и она закрылась'),
    ('Дозвон - планирует миграцию', 'Уже мигрировал', 'Сотрудник отработал задачу и она закрылась'),
    ('Дозвон - планирует миграцию', 'Ожидание предложений по условиям перехода', 'Сотрудник отработал задачу и она закрылась'),
    ('Дозвон - не планирует миграцию', 'Перешел в другой банк', 'Сотрудник отработал задачу и она закрылась'),
    ('Дозвон - не планирует миграцию', 'Планирует закрытие бизнеса', 'Сотрудник отработал задачу и она закрылась'),
    ('Дозвон - не планирует миграцию', 'Планирует закрытие счета', 'Сотрудник отработал задачу и она закрылась'),
    ('Дозвон - не планирует миграцию', 'Другое', 'Сотрудник отработал задачу и она закрылась'),
    ('Дозвон - коммуникация не состоялась', 'Отказ от разговора', 'Сотрудник отработал задачу и она закрылась. Как правило, было несколько попыток дозвона, но они все были не успешные'),
    ('Дозвон - коммуникация не состоялась', 'Некорректный номер', 'Сотрудник отработал задачу и она закрылась. Как правило, было несколько попыток дозвона, но они все были не успешные'),
    ('Дозвон - коммуникация не состоялась', '3-е лицо. Отказ от разговора', 'Сотрудник отработал задачу и она закрылась. Как правило, было несколько попыток дозвона, но они все были не успешные'),
    ('Дозвон - коммуникация не состоялась', '3-е лицо. Перезвонить по др номеру', 'Сотрудник отработал задачу и она закрылась. Как правило, было несколько попыток дозвона, но они все были не успешные'),
    ('Дозвон - коммуникация не состоялась', 'Неудобно говорить', 'Сотрудник отработал задачу и она закрылась. Как правило, было несколько попыток дозвона, но они все были не успешные'),
    ('Недозвон', 'Не берет трубку', 'Сотрудник отработал задачу и она закрылась. Как правило, было несколько попыток дозвона, но они все были не успешные'),
    ('Недозвон', 'Недоступен', 'Сотрудник отработал задачу и она закрылась. Как правило, было несколько попыток дозвона, но они все были не успешные'),
    ('Недозвон', 'Номер не существует', 'Сотрудник отработал задачу и она закрылась. Как правило, было несколько попыток дозвона, но они все были не успешные'),
    ('Недозвон', 'Номер банка заблокирован', 'Сотрудник отработал задачу и она закрылась. Как правило, было несколько попыток дозвона, но они все были не успешные'),
    ('Недозвон', 'Автоответчик', 'Сотрудник отработал задачу и она закрылась. Как правило, было несколько попыток дозвона, но они все были не успешные'),
    ('Не требуется коммуникация', 'Статус "мигрировал"', 'Для редких кейсов отклики, когда коммуникацию не нужно проводить'),
    ('Не требуется коммуникация', 'Ошибка загрузки', 'Для редких кейсов отклики, когда коммуникацию не нужно проводить')
  ) AS r (first_level, second_level, description);

-- A reaction level as the reference table writes it: blank and '-' mean absent (NULL).
CREATE FUNCTION infor_comm.reaction_level(level text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $body$ SELECT nullif(nullif(btrim(level), ''), '-') $body$;
