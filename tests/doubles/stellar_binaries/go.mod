module dlnet.test/stellardouble

go 1.21
