"""The paper's four datasets: where their arrays come from (`sources`: IDX and CIFAR files,
Debian's package, TFDS) and the deterministic `tf.data` pipelines that feed them (`pipeline`)."""
