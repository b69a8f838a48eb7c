"""Networks in place of free embeddings (Tian 2023, "Understanding the Role of Nonlinearity in
Training Dynamics of Contrastive Learning", ICLR): a network is a parametrisation of the
embeddings, and its objective is a contrastive loss composed with it. ``data`` generates the
paper's inputs (seeded); ``one_layer`` holds the objective of one unit w with a homogeneous
activation."""
