"""Training a builtin model that draws: the synthetic scenes, the checker that judges a picture
against its prompt, and the seeded training script (docs/builtin-model.md)."""
