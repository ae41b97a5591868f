-- 0012_hll_merge.sql -- the union of two host sketches by a merge of their sorted entries instead
-- of triage_hll_norm(a || b), whose unnest + GROUP BY + array_agg subquery was the most expensive
-- part of writing an analysis result (it runs on every rollup upsert and in the hour sync):
-- about a third of PostgreSQL's CPU per analyzed crash (bench/service, db_result_write).
-- Every caller passes sketches in normal form (one entry per register, sorted by register), except
-- triage_hll_of, which hands its raw entries as b with a = '{}'; a bag found out of order falls
-- back to the old way, so the result is the same for any input. plpgsql appends to an expanded
-- array in place, so the merge is linear.
CREATE OR REPLACE FUNCTION triage_hll_union(a integer[], b integer[]) RETURNS integer[]
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    na integer := coalesce(cardinality(a), 0);
    nb integer := coalesce(cardinality(b), 0);
    r integer[] := '{}';
    i integer := 1;
    j integer := 1;
    x integer;
    y integer;
BEGIN
    IF nb = 0 THEN
        RETURN coalesce(a, '{}');
    ELSIF na = 0 THEN
        RETURN triage_hll_norm(b);
    END IF;
    WHILE i <= na AND j <= nb LOOP
        x := a[i];
        y := b[j];
        IF x <= 0 OR y <= 0 OR (i > 1 AND x >> 6 <= a[i - 1] >> 6)
           OR (j > 1 AND y >> 6 <= b[j - 1] >> 6) THEN
            RETURN triage_hll_norm(a || b); -- not in normal form
        END IF;
        IF x >> 6 = y >> 6 THEN
            r := r || greatest(x, y);
            i := i + 1;
            j := j + 1;
        ELSIF x < y THEN
            r := r || x;
            i := i + 1;
        ELSE
            r := r || y;
            j := j + 1;
        END IF;
    END LOOP;
    -- the rest of one side: in normal form if the side was (checked as it is appended)
    WHILE i <= na LOOP
        IF a[i] <= 0 OR (i > 1 AND a[i] >> 6 <= a[i - 1] >> 6) THEN
            RETURN triage_hll_norm(a || b);
        END IF;
        r := r || a[i];
        i := i + 1;
    END LOOP;
    WHILE j <= nb LOOP
        IF b[j] <= 0 OR (j > 1 AND b[j] >> 6 <= b[j - 1] >> 6) THEN
            RETURN triage_hll_norm(a || b);
        END IF;
        r := r || b[j];
        j := j + 1;
    END LOOP;
    RETURN r;
END
$$;
