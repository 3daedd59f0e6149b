"""Dataset statistics shared by strategies: token counts, sentence embeddings, distribution uniformity, t-SNE.

Heavy libraries (transformers, sentence-transformers, scikit-learn, matplotlib) are imported inside functions,
so that importing a strategy module stays cheap."""
