"""lmlab.nn"""
