-- Number kept in step with ../postgres/0008_plugins.sql. A SQLite store serves one server, whose
-- installed plugins stay files in its --plugins-dir (where the offline CLI installs them too), so
-- nothing is created here.
SELECT 1;
