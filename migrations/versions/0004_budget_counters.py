"""budget counters: the credit governor's counters and notes, shared by every process of a
deployment

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 16:30:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('budget_counters',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('count', sa.BigInteger(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('expires_at', sa.Float(precision=53), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_budget_counters'))
    )


def downgrade():
    op.drop_table('budget_counters')
