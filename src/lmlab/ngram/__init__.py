"""lmlab.ngram"""
