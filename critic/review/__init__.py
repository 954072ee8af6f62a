"""`critic review`: which files, how they are chunked, the findings, their filters and settings, and
the report formats. Above critic.inference."""
