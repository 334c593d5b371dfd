-- consent.sql: the consent history consentgate reads live (--consent
-- postgresql://...). Apply once: psql -d DB -f policy/sql/consent.sql
--
-- The table is append-only: a change of consent is an INSERT, and the
-- rows are the proof of every consent given and withdrawn. For a person
-- and a purpose the row with the latest updated_at decides; equal
-- updated_at: the higher seq (the later insert) decides, exactly as the
-- CSV import decides by file order. updated_at is kept to the second
-- (timestamptz(0)) so that the database, the CSV import and the live
-- overlay order rows alike.
--
-- seq is the change sequence consentgate catches up by. Inserts take one
-- transaction-level lock before they draw their seq, so seq order is
-- commit order: a reader that has seen seq N has seen every row below N,
-- and "everything after the last seq applied" never skips a row that
-- committed late. Each insert NOTIFYs channel consent_changes with its seq.

BEGIN;

CREATE TABLE IF NOT EXISTS consent (
	seq          bigserial PRIMARY KEY,
	subject      text NOT NULL
	             CHECK (octet_length(subject) BETWEEN 1 AND 256),
	purpose      text NOT NULL CHECK (purpose ~ '^[A-Za-z0-9._-]{1,64}$'),
	status       text NOT NULL
	             CHECK (status IN ('granted', 'denied', 'withdrawn')),
	jurisdiction text NOT NULL CHECK (jurisdiction ~ '^[A-Z]{2}$'),
	updated_at   timestamptz(0) NOT NULL,
	evidence     text NOT NULL DEFAULT ''
	             CHECK (octet_length(evidence) <= 255),
	recorded_at  timestamptz NOT NULL DEFAULT now()
);

-- seq is drawn by the trigger below, under its lock, not by the column
-- default (which would draw one before the lock is held).
ALTER TABLE consent ALTER COLUMN seq DROP DEFAULT;

-- The person's rows, newest first: what decides them, for audits.
CREATE INDEX IF NOT EXISTS consent_subject_idx
	ON consent (subject, purpose, updated_at DESC, seq DESC);

-- Draw seq under a lock held to commit: seq order is commit order.
CREATE OR REPLACE FUNCTION consent_before_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_advisory_xact_lock(7243501);  -- 'consent' in one key
	NEW.seq := nextval(pg_get_serial_sequence('consent', 'seq'));
	NEW.recorded_at := now();
	RETURN NEW;
END $$;

-- One notification per statement: listeners catch up by seq, so a bulk
-- insert wakes them once, not once per row.
CREATE OR REPLACE FUNCTION consent_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('consent_changes', '');
	RETURN NULL;
END $$;

-- History is proof: it is never rewritten.
CREATE OR REPLACE FUNCTION consent_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'consent is append-only: % refused; insert a new row instead',
		TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;

DROP TRIGGER IF EXISTS consent_seq ON consent;
CREATE TRIGGER consent_seq BEFORE INSERT ON consent
	FOR EACH ROW EXECUTE FUNCTION consent_before_insert();
DROP TRIGGER IF EXISTS consent_notify ON consent;
CREATE TRIGGER consent_notify AFTER INSERT ON consent
	FOR EACH STATEMENT EXECUTE FUNCTION consent_notify();
DROP TRIGGER IF EXISTS consent_no_update ON consent;
CREATE TRIGGER consent_no_update BEFORE UPDATE OR DELETE ON consent
	FOR EACH ROW EXECUTE FUNCTION consent_refuse_change();
DROP TRIGGER IF EXISTS consent_no_truncate ON consent;
CREATE TRIGGER consent_no_truncate BEFORE TRUNCATE ON consent
	FOR EACH STATEMENT EXECUTE FUNCTION consent_refuse_change();

COMMIT;
