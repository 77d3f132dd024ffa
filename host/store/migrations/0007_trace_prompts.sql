-- Prompt versions linked to traces (`LinkPromptsToTrace`, MLflow's trace -> prompt version entity
-- associations), read by `prompt = 'name/version'` trace filters.
CREATE TABLE trace_prompts (
    trace_id TEXT NOT NULL REFERENCES trace_info (trace_id) ON DELETE CASCADE,
    -- `name/version`, as MLflow spells a prompt version's id.
    prompt   TEXT NOT NULL,
    PRIMARY KEY (trace_id, prompt)
);
CREATE INDEX trace_prompts_prompt ON trace_prompts (prompt);
