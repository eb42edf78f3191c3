"""refresh-ahead: the requested symbols and the refresh lease

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 11:15:00

"""
import sqlalchemy as sa
from alembic import op

from src.adapters.sql.orm import UTCDateTime

# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('requested_symbols',
    sa.Column('symbol', sa.String(length=32), nullable=False),
    sa.Column('last_requested_at', UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('symbol', name=op.f('pk_requested_symbols'))
    )
    with op.batch_alter_table('requested_symbols', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_requested_symbols_last_requested_at'),
                              ['last_requested_at'], unique=False)

    op.create_table('refresh_lease',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('holder', sa.String(length=128), nullable=True),
    sa.Column('expires_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('round_started_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_started_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_finished_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_symbols', sa.Integer(), nullable=True),
    sa.Column('last_refreshed', sa.Integer(), nullable=True),
    sa.Column('last_calls', sa.Integer(), nullable=True),
    sa.Column('last_stopped', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_refresh_lease'))
    )


def downgrade():
    op.drop_table('refresh_lease')
    with op.batch_alter_table('requested_symbols', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_requested_symbols_last_requested_at'))

    op.drop_table('requested_symbols')
