"""What the recorded RWC curves say, TensorFlow-free: the paper's claims as data (`claims`) and
the layer dynamics (`dynamics`: clusters, principal components, settling points)."""
