"""Fusion-quality metrics (EN, SD, SF, AG, MI, SCD, VIF, Qabf, SSIM) and their evaluation tables.

Import what you use from its module; importing this package loads nothing.
"""
