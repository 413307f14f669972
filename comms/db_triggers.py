"""Database triggers that keep a statement's wording and answers, and an issued brief, as they were.

The services never rewrite a statement version or a partner's answer, and refuse to change an
issued brief (409); the triggers make sure nothing else does either. Installed after every
migrate, as the decision log's are (SQLite drops a table's triggers when a migration rebuilds it).
"""

from django.db import DEFAULT_DB_ALIAS, connections

APPEND_ONLY_TABLES = ("comms_statementversion", "comms_statementreview")
FROZEN_WHEN_ISSUED = "comms_brief"

POSTGRES_FUNCTIONS = [
    """
CREATE OR REPLACE FUNCTION comms_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql
""",
    """
CREATE OR REPLACE FUNCTION comms_refuse_issued_change() RETURNS trigger AS $$
BEGIN
    IF OLD.status = 'issued' THEN
        RAISE EXCEPTION 'an issued brief is frozen: % refused', TG_OP
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql
""",
]


def statements(vendor: str) -> list[str]:
    sql: list[str] = []
    brief = FROZEN_WHEN_ISSUED
    if vendor == "postgresql":
        sql.extend(POSTGRES_FUNCTIONS)
        for table in APPEND_ONLY_TABLES:
            sql.append(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            sql.append(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION comms_refuse_change()"
            )
        sql.append(f"DROP TRIGGER IF EXISTS {brief}_frozen ON {brief}")
        sql.append(
            f"CREATE TRIGGER {brief}_frozen BEFORE UPDATE OR DELETE ON {brief} "
            "FOR EACH ROW EXECUTE FUNCTION comms_refuse_issued_change()"
        )
    elif vendor == "sqlite":
        for table in APPEND_ONLY_TABLES:
            for operation in ("UPDATE", "DELETE"):
                sql.append(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{operation.lower()} "
                    f"BEFORE {operation} ON {table} BEGIN "
                    f"SELECT RAISE(ABORT, '{table} is append-only: {operation} refused'); END"
                )
        for operation in ("UPDATE", "DELETE"):
            sql.append(
                f"CREATE TRIGGER IF NOT EXISTS {brief}_frozen_{operation.lower()} "
                f"BEFORE {operation} ON {brief} WHEN OLD.status = 'issued' BEGIN "
                f"SELECT RAISE(ABORT, 'an issued brief is frozen: {operation} refused'); END"
            )
    else:
        raise NotImplementedError(f"No triggers for database vendor {vendor!r}")
    return sql


def statement_triggers_install(using: str = DEFAULT_DB_ALIAS, **kwargs) -> None:
    connection = connections[using]
    with connection.cursor() as cursor:
        for statement in statements(connection.vendor):
            cursor.execute(statement)
