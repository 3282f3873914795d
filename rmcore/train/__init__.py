"""Training: one recipe (`recipe.train`) on accelerate, the k-wise loss beside it, the data
order, the precision and launch, checkpoints. Above model; nothing below imports it."""
