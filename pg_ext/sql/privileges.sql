-- What PUBLIC may not do, and who may use the schema. Runs last, when every object exists; what
-- each role may call or read is granted beside its entry points (pg_ext/src/api/).

REVOKE ALL ON ALL ROUTINES IN SCHEMA infor_comm FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA infor_comm FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA infor_comm FROM PUBLIC;
GRANT USAGE ON SCHEMA infor_comm TO infor_comm_relay, infor_comm_reader, infor_comm_job, infor_comm_writer,
    infor_comm_operator;

-- A login uses infor_comm only in the databases it was granted CONNECT on (login_scope.rs): the
-- functions check it, and so do the reader's row-level security policies (api/reader.rs).
-- infor_comm_writer writes only through the job's functions, which check it on entry.
GRANT EXECUTE ON FUNCTION infor_comm.require_login_for_database()
    TO infor_comm_reader, infor_comm_writer;
