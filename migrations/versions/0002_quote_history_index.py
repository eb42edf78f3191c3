"""quote history index: a coin's quotes by currency and time

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 11:10:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_COLUMNS = ['coin_id', 'currency', 'fetched_at']


def upgrade():
    if op.get_context().dialect.name == 'postgresql':
        # CONCURRENTLY: a table that already holds years of history keeps taking inserts
        # while the index builds; it cannot run inside a transaction.
        with op.get_context().autocommit_block():
            op.create_index('ix_quotes_coin_history', 'quotes', _COLUMNS, unique=False,
                            postgresql_concurrently=True, if_not_exists=True)
    else:
        op.create_index('ix_quotes_coin_history', 'quotes', _COLUMNS, unique=False)


def downgrade():
    op.drop_index('ix_quotes_coin_history', table_name='quotes')
