package main

import (
	"flag"
	"fmt"

	"github.com/freshet-ml/freshet/pipeline/project"
)

// initProject is `freshet init [DIR]`: a new project to start from.
func initProject(args []string) error {
	cmd := toolCommand(flag.NewFlagSet("freshet init", flag.ContinueOnError), "freshet init [DIR]",
		"Write a small working project into DIR (default freshet_project): feature definitions, a sample of\n"+
			"events and a README of the next commands. `freshet dev --schemas DIR` serves it. Existing files are\n"+
			"never overwritten.", true)
	line, err := cmd.Parse(args)
	if err != nil {
		return err
	}
	if len(line.Args) > 1 {
		return cmd.Fail(fmt.Errorf("one directory at most, got %d", len(line.Args)))
	}
	dir := "freshet_project"
	if len(line.Args) == 1 {
		dir = line.Args[0]
	}
	written, err := project.Init(dir)
	if err != nil {
		return err
	}
	for _, p := range written {
		fmt.Println("wrote", p)
	}
	fmt.Printf("\nNext:\n\n  freshet validate %s\n  freshet dev --schemas %s\n\nand see %s/README.md.\n", dir, dir, dir)
	return nil
}
