-- The population registry (人口库) as a real public-security bureau runs it on Oracle.
-- Equivalent to the PostgreSQL/SQLite table the sandbox creates (sandbox/public_security/registry.py).
-- updated_at is local Asia/Shanghai time without a zone, as the source systems store it.
CREATE USER population IDENTIFIED BY "change-me" QUOTA UNLIMITED ON USERS;

CREATE TABLE population.person_registry (
    person_no    NUMBER(19)     NOT NULL,
    resident_id  VARCHAR2(24 CHAR),
    name         NVARCHAR2(50)  NOT NULL,
    sex          CHAR(1),
    birth_date   DATE,
    ethnicity    NVARCHAR2(20),
    address      NVARCHAR2(300),
    region_code  CHAR(6),
    status       VARCHAR2(10)   NOT NULL,
    phone        VARCHAR2(20),
    updated_at   TIMESTAMP(0)   NOT NULL,
    CONSTRAINT person_registry_pk PRIMARY KEY (person_no),
    CONSTRAINT person_registry_sex_ck CHECK (sex IN ('1', '2')),
    CONSTRAINT person_registry_status_ck CHECK (status IN ('alive', 'deceased', 'moved'))
);

CREATE INDEX population.person_registry_changed ON population.person_registry (updated_at, person_no);
CREATE INDEX population.person_registry_rid ON population.person_registry (resident_id);

COMMENT ON TABLE population.person_registry IS '人口基础信息 (population registry)';
COMMENT ON COLUMN population.person_registry.resident_id IS '公民身份号码 (18-digit, some legacy 15-digit)';
COMMENT ON COLUMN population.person_registry.updated_at IS 'last change, local time Asia/Shanghai';
