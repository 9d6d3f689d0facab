package main

import "errors"

func dev(args []string) error { return errors.New("not yet") }
