module github.com/pushpull/pushpull

go 1.26.8
