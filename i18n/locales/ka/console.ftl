# ადმინისტრატორებისა და აუდიტორების კონსოლი.

console-title = Twofold-ის კონსოლი
console-skip = მთავარ შინაარსზე გადასვლა
console-nav-label = კონსოლის განყოფილებები
console-nav-overview = მიმოხილვა
console-nav-sign-out = გასვლა
console-language = ენა
console-language-change = შეცვლა
console-signed-in = { $tenant } · { $role } გასაღები { $key }
console-read-only = თქვენ შესული ხართ AUDITOR გასაღებით: ყველაფრის ნახვა შეგიძლიათ, შეცვლა — არა.

console-sign-in-title = კონსოლში შესვლა
console-sign-in-intro = გამოიყენეთ თქვენი ორგანიზაციის ADMIN ან AUDITOR API გასაღები. ის მაშინვე სესიით იცვლება და თქვენს ბრაუზერში არ ინახება.
console-sign-in-key = API გასაღები
console-sign-in-submit = შესვლა
console-sign-in-failed = ეს გასაღები არასწორია ან გაუქმებულია.
console-sign-in-forbidden = კონსოლში შესვლა მხოლოდ ADMIN და AUDITOR გასაღებებით შეიძლება.
console-sign-in-throttled = თქვენი მისამართიდან მეტისმეტად ბევრი მცდელობა იყო. სცადეთ ხელახლა { $seconds } წამში.
console-form-expired = ამ ფორმას ვადა გაუვიდა. განაახლეთ გვერდი და სცადეთ ხელახლა.
console-signed-out = თქვენ გამოხვედით კონსოლიდან.
console-session-ended = თქვენი სესია დასრულდა. შედით ხელახლა.

console-sign-out-title = გასვლა
console-sign-out-confirm = გსურთ ამ ბრაუზერში კონსოლიდან გასვლა?
console-sign-out-submit = გასვლა

console-overview-title = მიმოხილვა
console-overview-users-seen = ნანახი მომხმარებლები
console-overview-enrolled = ორფაქტორიანი ავთენტიფიკაციით
console-overview-not-enrolled = ორფაქტორიანი ავთენტიფიკაციის გარეშე
console-overview-enforcement = ორფაქტორიანი ავთენტიფიკაცია სავალდებულოა
console-overview-enforced = დიახ, { $since }-დან
console-overview-not-enforced = არა

console-error-title = რაღაც შეცდომა მოხდა
console-error-internal = მოხდა შიდა შეცდომა. გადაეცით მოთხოვნის ეს ID თქვენს ოპერატორს: { $request }
console-not-found = ასეთი გვერდი არ არსებობს.
