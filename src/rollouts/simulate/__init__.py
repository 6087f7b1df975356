"""`rollouts simulate`: a release replayed in virtual time through the engine and the analysis arithmetic,
with metric values and operator actions taken from a scenario file."""
