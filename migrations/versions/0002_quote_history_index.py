"""quote history index: a coin's quotes by currency and time

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 11:10:00

The new index leads with coin_id, so the old single-column ix_quotes_coin_id is redundant (the
foreign key's lookups use the new one) and is dropped: one index less to maintain on every
insert, and the planner can no longer pick it for a history range and filter thousands of rows.
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
            op.drop_index('ix_quotes_coin_id', table_name='quotes', postgresql_concurrently=True,
                          if_exists=True)
    else:
        op.create_index('ix_quotes_coin_history', 'quotes', _COLUMNS, unique=False)
        op.drop_index('ix_quotes_coin_id', table_name='quotes')


def downgrade():
    op.create_index('ix_quotes_coin_id', 'quotes', ['coin_id'], unique=False)
    op.drop_index('ix_quotes_coin_history', table_name='quotes')
