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

-- Search rows (`product_search`) are kept by triggers on `products` (migrations 0003, 0007).
-- Citus refuses to distribute a table with triggers unless `citus.enable_unsafe_triggers` is
-- on; it then creates each trigger, and its function, on every shard of `products`, where
-- a row's INSERT into `product_search` goes to the colocated shard of the same site. The
-- setting must be on in the workers' sessions too, and the functions the trigger functions
-- call must exist there (`pf_unaccent` and the unaccent extension it wraps).
SET citus.enable_unsafe_triggers TO on;
SELECT run_command_on_workers('ALTER SYSTEM SET citus.enable_unsafe_triggers TO on');
SELECT run_command_on_workers('SELECT pg_reload_conf()');
SELECT create_distributed_function('pf_unaccent(text)');
-- Migration 0007 writes a batch of new products' search rows from a statement trigger over
-- the statement's transition table. On a shard that is an INSERT … SELECT into a distributed
-- table, a distributed query, which Citus does not run from a query on a shard ("cannot
-- execute a distributed query from a query on a shard", in Citus' own regression test
-- `distributed_triggers` for a statement trigger on a distributed table). On Citus the
-- trigger goes back to 0003's row trigger: one single-shard INSERT per new product.
DROP TRIGGER products_search_insert ON products;
CREATE TRIGGER products_search_insert AFTER INSERT ON products
    FOR EACH ROW EXECUTE FUNCTION pf_product_search();

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
-- Hash-partitioned (migration 0008): Citus distributes the partitions with it.
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
