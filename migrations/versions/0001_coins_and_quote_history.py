"""coins and quote history

Revision ID: 0001
Revises:
Create Date: 2026-11-26 05:09:59.833677

"""
import sqlalchemy as sa
from alembic import op

from src.adapters.sql.orm import ExactDecimal, UTCDateTime

# revision identifiers, used by Alembic.
revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('coins',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('symbol', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('slug', sa.String(length=255), nullable=False),
    sa.Column('date_added', UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coins'))
    )
    op.create_table('quotes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('coin_id', sa.BigInteger(), nullable=False),
    sa.Column('lookup_symbol', sa.String(length=32), nullable=False),
    sa.Column('currency', sa.String(length=32), nullable=False),
    sa.Column('fetched_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('cmc_rank', sa.Integer(), nullable=True),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('num_market_pairs', sa.Integer(), nullable=True),
    sa.Column('circulating_supply', ExactDecimal(), nullable=True),
    sa.Column('total_supply', ExactDecimal(), nullable=True),
    sa.Column('max_supply', ExactDecimal(), nullable=True),
    sa.Column('coin_last_updated', UTCDateTime(timezone=True), nullable=True),
    sa.Column('price', ExactDecimal(), nullable=False),
    sa.Column('volume_24h', ExactDecimal(), nullable=True),
    sa.Column('volume_change_24h', ExactDecimal(), nullable=True),
    sa.Column('market_cap', ExactDecimal(), nullable=True),
    sa.Column('market_cap_dominance', ExactDecimal(), nullable=True),
    sa.Column('fully_diluted_market_cap', ExactDecimal(), nullable=True),
    sa.Column('percent_change_1h', ExactDecimal(), nullable=True),
    sa.Column('percent_change_24h', ExactDecimal(), nullable=True),
    sa.Column('percent_change_7d', ExactDecimal(), nullable=True),
    sa.Column('percent_change_30d', ExactDecimal(), nullable=True),
    sa.Column('percent_change_60d', ExactDecimal(), nullable=True),
    sa.Column('percent_change_90d', ExactDecimal(), nullable=True),
    sa.Column('quote_last_updated', UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['coin_id'], ['coins.id'], name=op.f('fk_quotes_coin_id_coins')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quotes'))
    )
    with op.batch_alter_table('quotes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quotes_coin_id'), ['coin_id'], unique=False)
        batch_op.create_index('ix_quotes_lookup', ['lookup_symbol', 'currency', 'fetched_at'],
                              unique=False)



def downgrade():
    with op.batch_alter_table('quotes', schema=None) as batch_op:
        batch_op.drop_index('ix_quotes_lookup')
        batch_op.drop_index(batch_op.f('ix_quotes_coin_id'))

    op.drop_table('quotes')
    op.drop_table('coins')
