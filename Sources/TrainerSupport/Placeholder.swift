import RNNKit
