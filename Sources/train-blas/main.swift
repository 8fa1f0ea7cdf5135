import TrainerSupport

TrainBlas.runAndExit()
