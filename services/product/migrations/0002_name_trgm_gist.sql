-- Relevance search ranks a bounded set of candidates (services/product/list.c): the names nearest the query by word
-- similarity, walked in distance order. GIN cannot order by distance; GiST can, so its cost does not grow with the
-- catalogue. The GIN index stays for the other sorts' `<%` filter, where GIN is the faster of the two.
CREATE INDEX IF NOT EXISTS products_name_trgm_gist ON product.products USING gist (name gist_trgm_ops);
