"""The reward model: backbone + pooling + scalar head, packed attention, batch layouts and
collate, and the one scoring path (`rmcore.model.scoring`). Above text; knows no training."""
