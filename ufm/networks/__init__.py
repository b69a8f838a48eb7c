"""Networks in place of free embeddings (Tian 2023, "Understanding the Role of Nonlinearity in
Training Dynamics of Contrastive Learning", ICLR): a network is a parametrisation of the
embeddings, and its objective is a contrastive loss composed with it. ``data`` generates the
paper's inputs (seeded); ``one_layer`` holds the objective of one unit w (E_alpha) with an
activation of ``one_layer.ACTIVATIONS`` (positively homogeneous ones, as Tian's analysis assumes,
and the quadratic one apart); ``modulation`` the data of global modulation (global patterns,
tokens discriminative of them or shared across them)."""
