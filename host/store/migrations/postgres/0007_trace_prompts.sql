-- PostgreSQL form of ../0007_trace_prompts.sql (same number, same table and index): prompt
-- versions linked to traces (`LinkPromptsToTrace`), read by `prompt = 'name/version'` filters.
CREATE TABLE trace_prompts (
    trace_id TEXT COLLATE "C" NOT NULL REFERENCES trace_info (trace_id) ON DELETE CASCADE,
    -- `name/version`, as MLflow spells a prompt version's id.
    prompt   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (trace_id, prompt)
);
CREATE INDEX trace_prompts_prompt ON trace_prompts (prompt);
