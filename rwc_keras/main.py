"""`python -m rwc_keras.main`: the paper's experiment driver, kept at this address for users;
the driver itself is `rwc_keras.experiment.driver`."""

from absl import app, flags

from rwc_keras.experiment import flags as driver_flags
from rwc_keras.experiment.driver import main

if __name__ == "__main__":
    driver_flags.define_flags()
    # --helpshort lists the key flags of __main__: the driver's are defined in its flags module.
    flags.adopt_module_key_flags(driver_flags)
    app.run(main)
