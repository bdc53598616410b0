-- Run once by the postgres image on an empty data volume
-- (/docker-entrypoint-initdb.d). One PostgreSQL server, one database and one
-- login role per gateway: each gateway owns its database and cannot connect
-- to the other's, as if they were two organisations. The passwords are
-- obviously fake and match deploy/compose/gateway-*.toml.
CREATE ROLE lockgate_a LOGIN PASSWORD 'compose-a-not-a-secret';
CREATE ROLE lockgate_b LOGIN PASSWORD 'compose-b-not-a-secret';
CREATE DATABASE lockgate_a OWNER lockgate_a;
CREATE DATABASE lockgate_b OWNER lockgate_b;
REVOKE ALL ON DATABASE lockgate_a FROM PUBLIC;
REVOKE ALL ON DATABASE lockgate_b FROM PUBLIC;
