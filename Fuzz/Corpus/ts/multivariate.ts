# a comment
@problemName Small
@timeStamps false
@missing false
@univariate false
@dimensions 2
@equalLength false
@classLabel true a b c
@data
1.5,2,-3e-1:4,5,6:b
0.5,-0.1:2.5,3:a
7:8:c
