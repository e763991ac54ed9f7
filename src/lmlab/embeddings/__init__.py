"""lmlab.embeddings"""
