"""`python -m rwc_keras.main`: the paper's experiment driver, kept at this address for users;
the driver itself is `rwc_keras.experiment.driver`."""

from absl import app

from rwc_keras.experiment.driver import main
from rwc_keras.experiment.flags import define_flags

if __name__ == "__main__":
    define_flags()
    app.run(main)
