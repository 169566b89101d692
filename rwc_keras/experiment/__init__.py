"""The paper's experiment (`python -m rwc_keras.main`): flags and driver, run folder, training
loop and history, the paper's models, `TorchSGD`, and the datasets in `data/`."""
