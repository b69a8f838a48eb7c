"""Solvers of the networks that stand in place of free embeddings (Tian 2023; the model is
``ufm.networks``): ``one_layer`` (batched ascent of one unit's contrastive energy, its checks and
census), ``kinks`` (the exact ascent on a ReLU unit's kinks and its local-optimum certificate),
``two_layer`` (training through any loss of the family)."""
