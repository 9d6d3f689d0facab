package cli

// DemoVariables exposes demoVariables to the external tests, which can
// import pipeline/devmode (an importer of this package) to check it.
var DemoVariables = demoVariables
