//! Experiment configs (DESIGN §3): the schema users write, loaded with located errors.
