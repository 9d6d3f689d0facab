package main

import (
	"flag"
	"fmt"

	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/pipeline/project"
)

// initProject is `freshet init [DIR]`: a new project to start from.
func initProject(args []string) error {
	dir := "freshet_project"
	cmd := toolCommand(flag.NewFlagSet("freshet init", flag.ContinueOnError), "freshet init [DIR]",
		"Write a small working project into DIR (default freshet_project): feature definitions, a sample of\n"+
			"events and a README of the next commands. `freshet dev --schemas DIR` serves it. Existing files are\n"+
			"never overwritten.")
	cmd.Positional = func(line config.Line) error {
		if len(line.Args) > 1 {
			return fmt.Errorf("one directory at most, got %d", len(line.Args))
		}
		if len(line.Args) == 1 {
			dir = line.Args[0]
		}
		return nil
	}
	if err := cmd.Start(args); err != nil {
		return err
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
