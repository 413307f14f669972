"""Database triggers that make the decision log (invariant 1) and the audit log append-only.

The application never updates or deletes an entry; the triggers make sure nothing else does
either, short of an administrator disabling them, which the hash chain then exposes.
"""

from django.db import DEFAULT_DB_ALIAS, connections

APPEND_ONLY_TABLES = (
    "coordination_decision",
    "coordination_decisionposition",
    # The security audit log (its chain head row moves with every append, so it has no trigger).
    "coordination_auditentry",
)

POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION ctpn_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql
"""


# The audit chain's head moves with every append; it may only move forward, and never goes away.
FORWARD_ONLY_TABLES = ("coordination_auditchainhead",)

POSTGRES_FORWARD_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION ctpn_refuse_rewind() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.last_sequence < OLD.last_sequence THEN
        RAISE EXCEPTION '% only moves forward: % refused', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql
"""


def statements(vendor: str) -> list[str]:
    sql: list[str] = []
    if vendor == "postgresql":
        sql.append(POSTGRES_FUNCTION)
        for table in APPEND_ONLY_TABLES:
            sql.append(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            sql.append(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION ctpn_refuse_change()"
            )
        sql.append(POSTGRES_FORWARD_ONLY_FUNCTION)
        for table in FORWARD_ONLY_TABLES:
            sql.append(f"DROP TRIGGER IF EXISTS {table}_forward_only ON {table}")
            sql.append(
                f"CREATE TRIGGER {table}_forward_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION ctpn_refuse_rewind()"
            )
    elif vendor == "sqlite":
        for table in APPEND_ONLY_TABLES:
            for operation in ("UPDATE", "DELETE"):
                sql.append(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{operation.lower()} "
                    f"BEFORE {operation} ON {table} BEGIN "
                    f"SELECT RAISE(ABORT, '{table} is append-only: {operation} refused'); END"
                )
        for table in FORWARD_ONLY_TABLES:
            sql.append(
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table} BEGIN "
                f"SELECT RAISE(ABORT, '{table} only moves forward: DELETE refused'); END"
            )
            sql.append(
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_rewind BEFORE UPDATE ON {table} "
                "WHEN NEW.last_sequence < OLD.last_sequence BEGIN "
                f"SELECT RAISE(ABORT, '{table} only moves forward: UPDATE refused'); END"
            )
    else:
        raise NotImplementedError(f"No append-only triggers for database vendor {vendor!r}")
    return sql


def append_only_triggers_install(using: str = DEFAULT_DB_ALIAS, **kwargs) -> None:
    connection = connections[using]
    with connection.cursor() as cursor:
        for statement in statements(connection.vendor):
            cursor.execute(statement)
