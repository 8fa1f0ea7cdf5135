import TrainerSupport

RNNKitCommand.runAndExit()
