// Package clock is the one manual clock of the tests: a Fake whose time
// moves only when the test says so. Code that reads the time takes it as a
// func() time.Time or through a one-method interface declared where it is
// used (lease.Clock, auth.SimpleOptions.Now, middleware.RateLimitConfig.Now,
// reconfig.Config.Now); production passes time.Now, tests a Fake.
package clock
