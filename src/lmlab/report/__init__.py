"""lmlab.report"""
