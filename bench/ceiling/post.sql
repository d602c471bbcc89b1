-- The SQL of one POST through the default pipeline, as pgbench runs it for
-- bench/run's ceiling: the same statements, in the same order, with the same
-- round trips (\startpipeline .. \endpipeline is one round trip).
--
-- bench/run checks this file against the statements PostgreSQL logs for a
-- real POST and refuses to run when they differ. Variables:
--   :guest            a guest id, drawn per transaction among the guests
--   :id, :conversation_id   what the message insert returned (\gset)
--   :c_<stage>_<n>    the value of parameter n of that stage's statement in
--                     the logged POST (bench/run passes them with -D)
-- One difference: the mapping's content_id is NULL in a POST, and pgbench
-- cannot send a NULL parameter, so the message id goes there (a bigint
-- column without constraints: the same work for PostgreSQL).
\set guest random(1, 1000)
\startpipeline
BEGIN;
SAVEPOINT stowage_stage_3;
INSERT INTO usage_metrics AS u (user_id, tier, total_requests, cache_hits, cache_misses, monthly_request_limit, month_start, month_requests) VALUES (:guest, :c_metrics_2, 1, 0, 1, :c_metrics_3::integer, date_trunc('month', now() AT TIME ZONE 'UTC')::date, 1) ON CONFLICT (user_id) DO UPDATE SET total_requests = u.total_requests + 1, cache_misses = u.cache_misses + 1, month_requests = CASE WHEN u.month_start = EXCLUDED.month_start THEN LEAST(u.month_requests, 2147483646) + 1 ELSE 1 END, month_start = EXCLUDED.month_start, updated_at = now() RETURNING tier, month_requests, monthly_request_limit, to_char(month_start + interval '1 month', 'YYYY-MM-DD'), xmax = 0;
\endpipeline
WITH conversation AS ( INSERT INTO conversation_cache (platform, user_id, message_count) VALUES (:c_postgres_1, :guest, 1) ON CONFLICT (platform, user_id) DO UPDATE SET message_count = conversation_cache.message_count + 1, updated_at = now() RETURNING id, message_count - 1 AS seq) INSERT INTO message_cache (conversation_id, sequence, role, content, message_hash, "timestamp") SELECT id, seq, :c_postgres_3, :c_postgres_4, :c_postgres_5, CAST(:c_postgres_6 AS timestamptz) FROM conversation RETURNING id, conversation_id, sequence \gset
\startpipeline
SAVEPOINT stowage_stage_2;
INSERT INTO cache_embeddings (conversation_id, message_id, embedding, embedding_model, embedding_dim, text_chunk, chunk_index) VALUES (:conversation_id::bigint, :id::bigint, :c_embeddings_3::jsonb, :c_embeddings_4::text, :c_embeddings_5::integer, :c_embeddings_6::text, :c_embeddings_7::integer) ON CONFLICT (message_id, chunk_index) DO NOTHING;
\endpipeline
\startpipeline
SAVEPOINT stowage_stage_4;
INSERT INTO cache_content_mapping (cache_type, cache_id, content_id, user_id, cache_backend, content_backend, is_synced) VALUES (:c_mapping_1, :id::bigint, :id::bigint, :guest, :c_mapping_5, :c_mapping_6, :c_mapping_7::boolean) ON CONFLICT (cache_type, cache_id) DO NOTHING;
\endpipeline
COMMIT;
