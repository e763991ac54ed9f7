"""lmlab.train"""
