"""Data generation: tampering (bug insertion), the sandbox that verifies it, the datasets built from
it, and the rubric rater that judges critiques against the known bugs. Above critic.core."""
