"""lmlab.eval"""
