"""lmlab.data.tokenizers"""
