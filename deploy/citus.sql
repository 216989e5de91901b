-- pricefleet on Citus: distribute the site-keyed tables by site_id.
--
-- Run once on the coordinator, after `pricefleet db upgrade` has created the schema there and
-- before any data is loaded. Citus is not installable on our build machines, so this script is
-- checked only against the schema in code (tests/store/test_citus_sql.py);
-- run it on a Citus 12+ cluster.
--
-- Why it works: every primary key starts with site_id, so each table can be hashed on it and
-- all rows of one site land on the same worker (colocated): ingest, history and per-site lists
-- stay single-node; search, compare and trending fan out, as the ShardedStore does by hand.

CREATE EXTENSION IF NOT EXISTS citus;

-- Small, read everywhere, referenced by foreign keys: copied to every node.
SELECT create_reference_table('sites');

-- Site-keyed data, hashed on site_id and colocated with products.
SELECT create_distributed_table('products', 'site_id');
-- Each product's narrow state row (migration 0005), written by every sighting: colocated.
SELECT create_distributed_table('product_state', 'site_id', colocate_with => 'products');
SELECT create_distributed_table('categories', 'site_id', colocate_with => 'products');
SELECT create_distributed_table('matches', 'site_id', colocate_with => 'products');
SELECT create_distributed_table('fetch_state', 'site_id', colocate_with => 'products');
-- PostgreSQL's search vectors (migration 0003), kept by a trigger on products: colocated.
SELECT create_distributed_table('product_search', 'site_id', colocate_with => 'products');
-- Partitioned by month on each node; new monthly partitions created by
-- `ensure_partitions` on the coordinator are distributed automatically.
SELECT create_distributed_table('price_observations', 'site_id', colocate_with => 'products');

-- Global, small, read and written on the coordinator only (API keys, the audit log): kept
-- local there, added to Citus' metadata so queries may still mention them.
SELECT citus_add_local_table_to_metadata('api_keys');
SELECT citus_add_local_table_to_metadata('audit_log');

-- The trending view reads distributed tables: Citus keeps it on the coordinator, and
-- REFRESH MATERIALIZED VIEW CONCURRENTLY price_moves pulls the rows it needs from the workers.
