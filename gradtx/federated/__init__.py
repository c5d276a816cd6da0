"""Federated learning: training on data that stays with its owners (FedAvg, FedOpt).

See gradtx/__init__.py for the public names.
"""
